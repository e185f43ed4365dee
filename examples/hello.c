/* hello: the smallest wasmformer program. */
#include <stdio.h>

int main(void) {
    printf("Hello, world! I am a C program running inside a transformer.\n");
    return 0;
}
