# Cross build for 64-bit ARM Linux with Debian's cross compiler (g++-aarch64-linux-gnu) against the
# arm64 libraries installed multiarch (dpkg --add-architecture arm64; libfoo-dev:arm64), so headers
# and libraries come from /usr/include[/aarch64-linux-gnu] and /usr/lib/aarch64-linux-gnu, not a
# separate sysroot. scripts/cross_aarch64.sh installs them and uses this file:
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# Binaries run under qemu-user: CMAKE_CROSSCOMPILING_EMULATOR makes ctest (and gtest's test discovery
# at build time) start them through qemu-aarch64.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# The multiarch triplet: find_library / find_package search lib/aarch64-linux-gnu, never the host's
# lib/x86_64-linux-gnu (CMakeLists.txt's OpenBLAS paths use it too).
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 CACHE STRING "Runs target binaries on the build host")

# Programs (mpicc, pkg-config) are the host's; libraries, headers and CMake packages only the target's
# (the root is / because multiarch keeps both architectures under /usr).
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)

# pkg-config would otherwise hand the host's x86_64 .pc files to the target build.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# -march=native names the build machine's CPU; a cross build targets the baseline (armv8-a) unless
# LATHE_ARCH says otherwise. The NEON kernels are chosen at run time (kernels/cpu/qblock_neon.cpp).
set(LATHE_NATIVE OFF CACHE BOOL "Compile for the build machine's CPU (-march=native)")
# Host MPI (x86 OpenMPI's mpicc) cannot link an arm64 program.
set(LATHE_MPI OFF CACHE BOOL "Build with MPI")
# The host's libjemalloc is x86_64; the cross build links glibc's malloc (scripts/cross_aarch64.sh
# does not install libjemalloc-dev:arm64).
set(LATHE_JEMALLOC OFF CACHE BOOL "Link the lathe binary with jemalloc when it is found")
