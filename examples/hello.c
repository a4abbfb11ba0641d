// hello: a DIOS task process in C. Build and run it on a local node:
//
//   ./libdios/build.sh && export PKG_CONFIG_PATH=$PWD/.build/libdios/lib/pkgconfig
//   cc -o hello examples/hello.c $(pkg-config --cflags --libs dios)
//   dios run ./hello --on 0.1 -- world
//
// It makes a stream and a blob in its kernel instance, passes a message
// through the stream, keeps its greeting in the blob, reads both back, and
// exits 0 when everything it checked held.
#include <dios.h>

#include <stdio.h>
#include <string.h>

static int check(const char *what, int r) {
    if (r < 0) fprintf(stderr, "hello: %s: %s\n", what, dios_strerror(r));
    return r < 0;
}

int main(int argc, char **argv) {
    if (!dios_is_task()) {
        fprintf(stderr, "hello: run me with `dios run`: I am not a DIOS task\n");
        return 2;
    }
    const char *who = argc > 1 ? argv[1] : "DIOS";
    printf("hello, %s: %s task process\n", who, dios_is_trusted() ? "a trusted" : "an untrusted");

    dios_ref stream, blob;
    dios_name name;
    dios_spec stream_spec = {.kind = DIOS_STREAM, .size = 64, .depth = 8};
    dios_spec blob_spec = {.kind = DIOS_BLOB, .size = 64};
    if (check("create stream", dios_create(&stream_spec, 0, &name, &stream))) return 1;
    if (check("create blob", dios_create(&blob_spec, 0, NULL, &blob))) return 1;

    char message[64];
    snprintf(message, sizeof(message), "hello, %s", who);
    if (check("write", dios_write(stream, message, strlen(message) + 1, 0))) return 1;
    char got[64] = {0};
    size_t n = 0;
    if (check("read", dios_read(stream, got, sizeof(got), &n, 0))) return 1;
    printf("the stream carried \"%s\" (%zu bytes)\n", got, n);

    if (check("write blob", dios_write(blob, got, n, 0))) return 1;
    char kept[64] = {0};
    if (check("read blob", dios_read(blob, kept, sizeof(kept), &n, 0))) return 1;
    dios_entry e;
    if (check("describe", dios_describe(blob, &e))) return 1;
    printf("the blob on instance %u.%u keeps \"%s\"\n", e.owner_node, e.owner_core, kept);
    return strcmp(kept, message) == 0 ? 0 : 1;
}
