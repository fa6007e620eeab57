# evscript_add_plugin(<target>
#     VERSION <X.Y.Z>            semantic version, signed into the trusted comment
#     [NAME <name>]              plugin name (default: <target>); the file is <name>.so
#     [SIGN_KEY <secret key>]    sign after each build into <name>.so.minisig
#     [OUTPUT_DIRECTORY <dir>]   where <name>.so (and its signature) go
#     SOURCES <file>...)
#
# Builds a plugin (C or C++ sources) as a MODULE library against
# evscript::sdk with hidden visibility and a version script (only the SDK's
# entry points and the plugin info are exported)
# and defines EVS_PLUGIN_NAME and EVS_PLUGIN_VERSION for the sources, so that
# `EVS_PLUGIN(EVS_PLUGIN_NAME, EVS_PLUGIN_VERSION);` keeps one source of truth.
# Signing uses the `evscript` command (EVSCRIPT_EXECUTABLE) with the trusted
# comment "plugin:<name> version:<X.Y.Z> abi:<EVSCRIPT_ABI_MAJOR>".
function(evscript_add_plugin target)
  cmake_parse_arguments(P "" "VERSION;NAME;SIGN_KEY;OUTPUT_DIRECTORY" "SOURCES;DEPENDS" ${ARGN})
  if(NOT P_VERSION)
    message(FATAL_ERROR "evscript_add_plugin(${target}): VERSION is required")
  endif()
  if(NOT P_VERSION MATCHES "^[0-9]+\\.[0-9]+\\.[0-9]+$")
    message(FATAL_ERROR "evscript_add_plugin(${target}): VERSION must be X.Y.Z, got '${P_VERSION}'")
  endif()
  if(NOT P_SOURCES)
    message(FATAL_ERROR "evscript_add_plugin(${target}): SOURCES is required")
  endif()
  if(NOT P_NAME)
    set(P_NAME ${target})
  endif()
  if(NOT P_NAME MATCHES "^[a-zA-Z0-9_-]+$")
    message(FATAL_ERROR "evscript_add_plugin(${target}): NAME must match ^[a-zA-Z0-9_-]+$")
  endif()

  add_library(${target} MODULE ${P_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    SUFFIX ".so"
    OUTPUT_NAME ${P_NAME}
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  if(P_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${P_OUTPUT_DIRECTORY})
  endif()
  target_link_libraries(${target} PRIVATE evscript::sdk)
  # Only the plugin info and the entry points leave the object, whatever the
  # language: C++'s standard library headers have default visibility, so its
  # template instantiations would otherwise be exported as weak symbols.
  set(map ${CMAKE_CURRENT_BINARY_DIR}/${target}.exports.map)
  file(WRITE ${map} "{\n  global: evs_plugin_info; on_event; run_action;\n  local: *;\n};\n")
  target_link_options(${target} PRIVATE "LINKER:--version-script=${map}")
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${map})
  target_compile_definitions(${target} PRIVATE
    EVS_PLUGIN_NAME="${P_NAME}" EVS_PLUGIN_VERSION="${P_VERSION}")

  if(P_SIGN_KEY)
    if(NOT EVSCRIPT_EXECUTABLE)
      message(FATAL_ERROR "evscript_add_plugin(${target}): SIGN_KEY needs EVSCRIPT_EXECUTABLE")
    endif()
    if(NOT DEFINED EVSCRIPT_ABI_MAJOR)
      message(FATAL_ERROR "evscript_add_plugin(${target}): EVSCRIPT_ABI_MAJOR is not set")
    endif()
    if(P_OUTPUT_DIRECTORY)
      set(sig_file ${P_OUTPUT_DIRECTORY}/${P_NAME}.so.minisig)
    elseif(CMAKE_LIBRARY_OUTPUT_DIRECTORY)
      set(sig_file ${CMAKE_LIBRARY_OUTPUT_DIRECTORY}/${P_NAME}.so.minisig)
    else()
      set(sig_file ${CMAKE_CURRENT_BINARY_DIR}/${P_NAME}.so.minisig)
    endif()
    add_custom_command(TARGET ${target} POST_BUILD
      COMMAND ${EVSCRIPT_EXECUTABLE} sign -q -s ${P_SIGN_KEY} -m $<TARGET_FILE:${target}>
              -t "plugin:${P_NAME} version:${P_VERSION} abi:${EVSCRIPT_ABI_MAJOR}"
      BYPRODUCTS ${sig_file}
      COMMENT "Signing plugin ${P_NAME} ${P_VERSION}"
      VERBATIM)
  endif()
  if(P_DEPENDS)
    add_dependencies(${target} ${P_DEPENDS})
  endif()
endfunction()
