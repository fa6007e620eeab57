# The ELF symbol reader of crash reports (runtime/executor/crash_elf.c),
# included by tests/fuzz/CMakeLists.txt.
set(EVS_EXECUTOR_DIR ${PROJECT_SOURCE_DIR}/runtime/executor)
evs_add_fuzzer(elfsym LIBS evs_zygote
  FUZZ_SOURCES ${EVS_EXECUTOR_DIR}/crash_elf.c
  INCLUDES ${EVS_EXECUTOR_DIR} ${PROJECT_SOURCE_DIR}/runtime/loader ${PROJECT_SOURCE_DIR}/runtime/sign
           ${PROJECT_SOURCE_DIR}/runtime/common ${PROJECT_SOURCE_DIR}/plugin-sdk/include)
