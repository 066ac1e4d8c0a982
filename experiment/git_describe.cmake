# Writes OUTPUT, a C++ file defining ivmc::experiment::detail::git_describe(): the output of
# `git describe --always --dirty` for SOURCE_DIR now, or "" when it has none (git missing, or
# SOURCE_DIR is not the top of a git work tree, e.g. an unpacked tarball). Run at every build
# (cmake -P, from experiment/CMakeLists.txt); the file is rewritten only when the text
# changes, so an unchanged description recompiles nothing.
#   cmake -DSOURCE_DIR=... -DGIT_EXECUTABLE=... -DOUTPUT=... -P git_describe.cmake
cmake_minimum_required(VERSION 3.25)
set(describe "")
if(GIT_EXECUTABLE)
  execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --show-toplevel
                  WORKING_DIRECTORY "${SOURCE_DIR}" OUTPUT_VARIABLE top
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE top_result)
  file(REAL_PATH "${SOURCE_DIR}" source_real)
  if(top_result EQUAL 0 AND top)
    file(REAL_PATH "${top}" top_real)
  endif()
  # Only this tree's own repository: a tarball unpacked inside another work tree is not it.
  if(top_result EQUAL 0 AND top_real STREQUAL source_real)
    execute_process(COMMAND "${GIT_EXECUTABLE}" describe --always --dirty
                    WORKING_DIRECTORY "${SOURCE_DIR}" OUTPUT_VARIABLE out
                    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE result)
    if(result EQUAL 0)
      set(describe "${out}")
    endif()
  endif()
endif()
# A tag name may hold '"' or '\': escaped for the C++ string literal.
string(REPLACE "\\" "\\\\" literal "${describe}")
string(REPLACE "\"" "\\\"" literal "${literal}")
set(text "// Generated at build time by experiment/git_describe.cmake: do not edit.
#include \"git_describe.hpp\"

std::string_view ivmc::experiment::detail::git_describe() {
  return \"${literal}\";
}
")
set(old "")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUTPUT}" "${text}")
endif()
