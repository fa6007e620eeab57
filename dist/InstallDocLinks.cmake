# Run at install time (install(CODE) in dist/CMakeLists.txt): every relative
# link of the installed Markdown documents must lead somewhere. A target that
# is a file of the source tree (an example plugin's source, the SDK header)
# is installed next to the documents at the same relative path, so the
# installed documents' links work as they do in the repository. EVS_SRC and
# EVS_DOCDIR are set by the caller; DESTDIR is honoured.
set(root "$ENV{DESTDIR}${EVS_DOCDIR}")
file(GLOB_RECURSE docs RELATIVE "${root}" "${root}/*.md")
foreach(doc ${docs})
  get_filename_component(dir "${doc}" DIRECTORY)
  file(READ "${root}/${doc}" text)
  # "](" would make list items with an unbalanced "]", which CMake does not
  # split on: mark the links first
  string(REPLACE "](" "<evs-link>(" text "${text}")
  string(REGEX MATCHALL "<evs-link>\\([^)#: ]+[)#]" links "${text}")
  foreach(link ${links})
    string(REGEX REPLACE "^<evs-link>\\(([^)#]+)[)#]$" "\\1" target "${link}")
    if(dir)
      set(rel "${dir}/${target}")
    else()
      set(rel "${target}")
    endif()
    cmake_path(NORMAL_PATH rel)
    if(rel MATCHES "^\\.\\./" OR EXISTS "${root}/${rel}")
      continue()
    endif()
    if(EXISTS "${EVS_SRC}/${rel}" AND NOT IS_DIRECTORY "${EVS_SRC}/${rel}")
      get_filename_component(to "${EVS_DOCDIR}/${rel}" DIRECTORY)
      file(INSTALL "${EVS_SRC}/${rel}" DESTINATION "${to}") # file(INSTALL) adds DESTDIR
    else()
      message(WARNING "${doc}: the link to ${target} leads nowhere once installed")
    endif()
  endforeach()
endforeach()
