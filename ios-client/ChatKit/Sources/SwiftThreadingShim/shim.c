// Works around a packaging bug of Debian's swiftlang 6.0.3 (trixie): libswiftObservation.so
// (and libswiftObservation.a, libswiftCore.a) reference the C++ function
// `swift::threading::fatal(const char *, ...)`, which upstream toolchains link into each runtime
// library from the internal swiftThreading library, but no library of the Debian package defines
// or exports it. Every program that uses `@Observable` then fails to link with "undefined
// reference to swift::threading::fatal". This defines it (under its mangled name) with the
// upstream behaviour: print the message and abort. Only built on Linux (see Package.swift); a
// toolchain that does export it takes its own definition first at load time.
#if defined(__linux__)
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((used, visibility("default"), noreturn))
void chatkit_swift_threading_fatal(const char *format, ...) __asm__("_ZN5swift9threading5fatalEPKcz");

void chatkit_swift_threading_fatal(const char *format, ...) {
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    abort();
}
#endif
