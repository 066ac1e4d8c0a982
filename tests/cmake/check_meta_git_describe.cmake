# meta.json's `git_describe` is the source tree's `git describe --always --dirty` as it is now
# (issue 19): a binary built from this tree, however incrementally, records the tree's current
# commit, not the one CMake was configured at. null when the tree has no repository of its own.
#   cmake -DIVMC=... -DSOURCE_DIR=... -DGIT_EXECUTABLE=... -DWORK_DIR=... -P this
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
execute_process(COMMAND "${IVMC}" run "${SOURCE_DIR}/scenarios/examples/race_exposure.toml"
                        --set duration_s=1 --out "${WORK_DIR}/out"
                WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE run_result
                OUTPUT_QUIET ERROR_VARIABLE run_error)
if(NOT run_result EQUAL 0)
  message(FATAL_ERROR "ivmc run failed (${run_result}): ${run_error}")
endif()
file(READ "${WORK_DIR}/out/meta.json" meta)
string(JSON type TYPE "${meta}" git_describe)
set(recorded "null")
if(type STREQUAL "STRING")
  string(JSON recorded GET "${meta}" git_describe)
elseif(NOT type STREQUAL "NULL")
  message(FATAL_ERROR "meta.json's git_describe is a ${type}, not a string or null")
endif()

set(expected "null")
if(GIT_EXECUTABLE)
  execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --show-toplevel
                  WORKING_DIRECTORY "${SOURCE_DIR}" OUTPUT_VARIABLE top
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE top_result)
  if(top_result EQUAL 0)
    file(REAL_PATH "${top}" top_real)
    file(REAL_PATH "${SOURCE_DIR}" source_real)
    if(top_real STREQUAL source_real)
      execute_process(COMMAND "${GIT_EXECUTABLE}" describe --always --dirty
                      WORKING_DIRECTORY "${SOURCE_DIR}" OUTPUT_VARIABLE expected
                      OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
    endif()
  endif()
endif()
if(NOT recorded STREQUAL expected)
  message(FATAL_ERROR "meta.json records git_describe '${recorded}', but the source tree is "
                      "'${expected}' now (a build after the last commit must record it; if "
                      "you changed the tree since building, build again)")
endif()
message(STATUS "meta.json git_describe: ${recorded}")
