# experiment/git_describe.cmake in a scratch repository: the written description follows new
# commits, tags (escaped) and uncommitted changes, the file is not rewritten when the description is the same
# (so an incremental build recompiles nothing), and a tree with no repository of its own (an
# unpacked tarball, even inside another work tree) gets "".
#   cmake -DSCRIPT=... -DGIT_EXECUTABLE=... -DWORK_DIR=... -P this
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/repo/unpacked")
set(repo "${WORK_DIR}/repo")
set(out "${WORK_DIR}/git_describe.cpp")

function(git)
  execute_process(COMMAND "${GIT_EXECUTABLE}" -c user.name=t -c user.email=t@t ${ARGN}
                  WORKING_DIRECTORY "${repo}" OUTPUT_QUIET COMMAND_ERROR_IS_FATAL ANY)
endfunction()
function(generate source)
  execute_process(COMMAND "${CMAKE_COMMAND}" -DSOURCE_DIR=${source}
                          -DGIT_EXECUTABLE=${GIT_EXECUTABLE} -DOUTPUT=${out} -P "${SCRIPT}"
                  COMMAND_ERROR_IS_FATAL ANY)
endfunction()
function(expect_describes what)
  execute_process(COMMAND "${GIT_EXECUTABLE}" describe --always --dirty WORKING_DIRECTORY "${repo}"
                  OUTPUT_VARIABLE want OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  file(READ "${out}" text)
  string(REPLACE "\"" "\\\"" literal "${want}")
  string(FIND "${text}" "return \"${literal}\";" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${what}: expected '${want}' in:\n${text}")
  endif()
  set(want "${want}" PARENT_SCOPE)
endfunction()

git(init -q)
file(WRITE "${repo}/a.txt" "one\n")
git(add a.txt)
git(commit -q -m one)
generate("${repo}")
expect_describes("first commit")
set(first "${want}")

file(TIMESTAMP "${out}" stamp "%s")
execute_process(COMMAND "${CMAKE_COMMAND}" -E sleep 1.1)
generate("${repo}")
file(TIMESTAMP "${out}" again "%s")
if(NOT stamp STREQUAL again)
  message(FATAL_ERROR "the same description rewrote ${out}: every build would recompile it")
endif()

file(WRITE "${repo}/a.txt" "two\n")
generate("${repo}")
expect_describes("an uncommitted change")
if(NOT want MATCHES "-dirty$")
  message(FATAL_ERROR "an uncommitted change is not -dirty: '${want}'")
endif()

# Fails with `why` unless the generated file contains `needle`.
function(expect_generated needle why)
  file(READ "${out}" text)
  string(FIND "${text}" "${needle}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${why}:\n${text}")
  endif()
endfunction()

git(commit -q -a -m two)
generate("${repo}")
expect_describes("second commit")
if(want STREQUAL first)
  message(FATAL_ERROR "a new commit kept the old description '${first}'")
endif()

git(tag -a -m v1 "v\"1") # git allows '"' in a tag name (not '\\')
generate("${repo}")
expect_describes("a tag with a quote")
expect_generated([[return "v\"1";]] "the tag is not escaped for C++")

generate("${repo}/unpacked")
expect_generated([[return "";]] "a tree inside another repository got a description")
