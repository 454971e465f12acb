/* libFuzzer target: the .tflite reader and both converters' graph walks
 * (tools/tflite_convert.c, its main renamed out of the way). */
#define main reage_tflite_main
#include "../../tools/tflite_convert.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static TfModel m;
    static FaceDetector fd;
    static FaceMesh fm;
    static int built;
    Err e;
    if (!built) {
        facedet_build(&fd);
        facemesh_build(&fm);
        if (params_alloc(&fd.ps, 0) || params_alloc(&fm.ps, 0)) return 0;
        built = 1;
    }
    if (tflite_parse(&m, data, size, "fuzz", &e)) return 0;
    convert(&m, &fd, "fuzz", &e);
    convert_mesh(&m, &fm, "fuzz", &e);
    return 0;
}
