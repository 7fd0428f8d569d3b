# Build step (cmake -P): server/api/ui/* into one C file, ui_files.c, for
# h_ui.c to serve. Every file but index.html is served under
# /ui/assets/<build>/<name>, where <build> is a hash of all the files'
# contents, so a changed file gets a new URL and assets can be cached for
# good; index.html (always revalidated) names them through @UI_BUILD@.
#   cmake -DUI_DIR=server/api/ui -DOUT=build/.../ui_files.c -P embed_ui.cmake
file(GLOB names RELATIVE ${UI_DIR} ${UI_DIR}/*)
list(SORT names)
set(manifest "")
foreach(n IN LISTS names)
  if(NOT n MATCHES "^[A-Za-z0-9_-]+\\.[a-z]+$")
    message(FATAL_ERROR "embed_ui: ${n}: UI file names are [A-Za-z0-9_-]+.ext")
  endif()
  file(SHA256 ${UI_DIR}/${n} h)
  string(APPEND manifest "${n} ${h}\n")
endforeach()
string(SHA256 build "${manifest}")
string(SUBSTRING ${build} 0 16 build)

set(arrays "")
set(rows "")
set(i 0)
foreach(n IN LISTS names)
  if(n STREQUAL "index.html")
    file(READ ${UI_DIR}/${n} text)
    string(REPLACE "@UI_BUILD@" ${build} text "${text}")
    file(WRITE ${OUT}.index.html "${text}")
    file(READ ${OUT}.index.html hex HEX)
  else()
    file(READ ${UI_DIR}/${n} hex HEX)
  endif()
  string(LENGTH "${hex}" len)
  math(EXPR len "${len} / 2")
  if(len EQUAL 0)
    message(FATAL_ERROR "embed_ui: ${n} is empty")
  endif()
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND arrays "static const unsigned char file${i}[] = {${bytes}};\n")
  string(APPEND rows "    {\"${n}\", file${i}, ${len}},\n")
  math(EXPR i "${i} + 1")
endforeach()

file(WRITE ${OUT} "/* Generated from server/api/ui/ by server/api/embed_ui.cmake. */
#include \"http.h\"

const char cs_ui_build[] = \"${build}\";

${arrays}
const struct cs_ui_file cs_ui_files[] = {
${rows}};
const size_t cs_ui_files_count = ${i};
")
file(REMOVE ${OUT}.index.html)
