/* Runs every engine test and prints the closing "N passed, N failed" line. */
#include <stdio.h>
#include "../src/fileio.h"
#include <string.h>
#include "check.h"

int checks_passed, checks_failed;

void test_layers(void);
void test_models(void);
void test_blob(void);
void test_images(void);
void test_training(void);
void test_facedetect(void);
void test_prototypes(void);
void test_structured(void);

int main(int argc, char **argv) {
    memory_keep_freed();
    struct { const char *name; void (*fn)(void); } suites[] = {
        {"layers", test_layers}, {"models", test_models}, {"blob", test_blob},
        {"images", test_images}, {"training", test_training}, {"facedetect", test_facedetect},
        {"prototypes", test_prototypes}, {"structured", test_structured},
    };
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        if (argc > 1 && strcmp(argv[1], suites[i].name)) continue;
        int before = checks_failed;
        suites[i].fn();
        printf("%-10s %s\n", suites[i].name, checks_failed == before ? "ok" : "FAILED");
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", checks_passed, checks_failed);
    return checks_failed ? 1 : 0;
}
