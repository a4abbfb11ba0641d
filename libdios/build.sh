#!/bin/sh
# Builds libdios (the C ABI) into DIR (default .build/libdios): DIR/lib holds
# the library, DIR/include the headers, DIR/lib/pkgconfig/dios.pc says where,
# so that
#   PKG_CONFIG_PATH=DIR/lib/pkgconfig cc prog.c $(pkg-config --cflags --libs dios)
# builds a program that runs in place (the library is found through an rpath).
# With DIR=/usr/local it is installed where pkg-config looks by default.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../.build/libdios}
mkdir -p "$out/lib/pkgconfig" "$out/include"
out=$(cd "$out" && pwd)
cc=${CC:-cc}
"$cc" -std=c11 -O2 -g -Wall -Wextra -Werror -fPIC -shared -fvisibility=default \
    -I"$here/include" -I"$here/../CSupport/CDIOSChannel/include" \
    -Wl,-soname,libdios.so.0 -o "$out/lib/libdios.so.0" "$here/dios.c" "$here/dios_streams.c" -lpthread
ln -sf libdios.so.0 "$out/lib/libdios.so"
cp "$here/include/dios.h" "$here/../CSupport/CDIOSChannel/include/dios_channel.h" "$out/include/"
cat > "$out/lib/pkgconfig/dios.pc" <<PC
prefix=$out
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: dios
Description: The C ABI of DIOS task processes
Version: 0.1.0
Cflags: -I\${includedir}
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -ldios
PC
echo "$out"
