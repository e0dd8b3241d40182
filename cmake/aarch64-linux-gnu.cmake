# Cross build for 64-bit ARM Linux with Debian's cross compiler
# (gcc-aarch64-linux-gnu) and the arm64 -dev packages installed multiarch
# (dpkg --add-architecture arm64; libpcre2-dev:arm64 …; contrib/install-deps.sh
# --aarch64 installs them):
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# ctest runs the test programs under qemu-aarch64 when it is installed
# (qemu-user); the arm64 libc comes from the multiarch libc6:arm64.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# pkg-config: only the arm64 .pc files (multiarch folder) plus the
# architecture-independent ones.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

find_program(LW_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(LW_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${LW_QEMU_AARCH64})
endif()
