# The declared-subscriptions reader of the loader (runtime/loader/loader_subs.c),
# included by tests/fuzz/CMakeLists.txt.
if(TARGET evs_loader)
  evs_add_fuzzer(subscriptions LIBS evs_loader
    FUZZ_SOURCES ${PROJECT_SOURCE_DIR}/runtime/loader/loader_subs.c
    FUZZ_LIBS evs_loader_open evs_common
    INCLUDES $<TARGET_PROPERTY:evs_loader,INTERFACE_INCLUDE_DIRECTORIES>)
endif()
