# bpf_object(NAME SOURCE HEADERS h1 h2 ...)
#
# Compiles SOURCE with clang -target bpf against the kernel UAPI headers (no
# vmlinux.h: the cgroup sock_addr/sock contexts are stable UAPI and the
# verifier rewrites accesses to them), then generates NAME.skel.h with
# bpftool. Every header the object includes is a DEPENDS, so editing the
# shared ABI header rebuilds the object and the skeleton. Exposes an
# INTERFACE target NAME_skel whose include directory holds the skeleton.
find_program(BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

execute_process(COMMAND uname -m OUTPUT_VARIABLE _egd_arch OUTPUT_STRIP_TRAILING_WHITESPACE)
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch OUTPUT_VARIABLE _egd_multiarch
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)

function(bpf_object NAME SOURCE)
  cmake_parse_arguments(BO "" "" "HEADERS" ${ARGN})
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${NAME}.bpf.o)
  set(skel ${CMAKE_CURRENT_BINARY_DIR}/${NAME}.skel.h)
  set(src ${CMAKE_CURRENT_SOURCE_DIR}/${SOURCE})
  list(TRANSFORM BO_HEADERS PREPEND ${CMAKE_CURRENT_SOURCE_DIR}/)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -Wall -Werror
            -I/usr/include/${_egd_multiarch} -I${CMAKE_CURRENT_SOURCE_DIR}
            -c ${src} -o ${obj}
    DEPENDS ${src} ${BO_HEADERS}
    COMMENT "BPF ${NAME}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${NAME}_bpf > ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${NAME}.skel.h"
    VERBATIM)
  add_custom_target(${NAME}_skel_gen DEPENDS ${skel})
  add_library(${NAME}_skel INTERFACE)
  add_dependencies(${NAME}_skel ${NAME}_skel_gen)
  target_include_directories(${NAME}_skel INTERFACE ${CMAKE_CURRENT_BINARY_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  set_property(GLOBAL PROPERTY ${NAME}_BPF_OBJECT ${obj})
endfunction()
