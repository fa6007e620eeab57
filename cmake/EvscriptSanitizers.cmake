# evs_sanitize_directory(): ASan+UBSan for every target defined after the call
# in the calling directory and below, when EVSCRIPT_SANITIZE is on. Called by
# runtime/ and the tests, not by plugins/: a plugin is loaded into whatever
# host runs it and stays a plain shared object.
macro(evs_sanitize_directory)
  if(EVSCRIPT_SANITIZE)
    add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    add_link_options(-fsanitize=address,undefined)
  endif()
endmacro()
