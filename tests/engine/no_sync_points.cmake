# Fails when the library LIBRARY defines or uses arenakv::SyncPoint: the
# sync points are for arenakv_engine_testing only (engine/CMakeLists.txt).
#   cmake -DNM=<nm> -DLIBRARY=<library> -P no_sync_points.cmake
execute_process(COMMAND ${NM} -C ${LIBRARY}
  OUTPUT_VARIABLE symbols ERROR_VARIABLE errors RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${NM} failed on ${LIBRARY}: ${errors}")
endif()
if(NOT symbols MATCHES "arenakv::")
  message(FATAL_ERROR "no arenakv symbol listed in ${LIBRARY}: is it the engine library?")
endif()
string(REGEX MATCHALL "[^\n]*SyncPoint[^\n]*" hooks "${symbols}")
if(hooks)
  list(JOIN hooks "\n" hooks)
  message(FATAL_ERROR "${LIBRARY} contains sync points:\n${hooks}")
endif()
