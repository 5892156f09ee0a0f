# NCCL backend: built when the CUDA toolkit and NCCL are found (DMA_WITH_NCCL=AUTO),
# required with ON, skipped with OFF. Exposes the IMPORTED target dma::nccl and
# the variable DMA_HAVE_NCCL.
set(DMA_HAVE_NCCL OFF)
if(NOT DMA_WITH_NCCL STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  find_path(NCCL_INCLUDE_DIR nccl.h
    HINTS ${CUDAToolkit_INCLUDE_DIRS} $ENV{NCCL_HOME}/include /usr/local/cuda/include)
  find_library(NCCL_LIBRARY nccl
    HINTS ${CUDAToolkit_LIBRARY_DIR} $ENV{NCCL_HOME}/lib /usr/local/cuda/lib64)
  if(CUDAToolkit_FOUND AND NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    add_library(dma::nccl UNKNOWN IMPORTED)
    set_target_properties(dma::nccl PROPERTIES
      IMPORTED_LOCATION "${NCCL_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${NCCL_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES CUDA::cudart)
    set(DMA_HAVE_NCCL ON)
    message(STATUS "dma: NCCL backend ON (${NCCL_LIBRARY})")
  elseif(DMA_WITH_NCCL STREQUAL "ON")
    message(FATAL_ERROR "DMA_WITH_NCCL=ON but the CUDA toolkit or NCCL was not found: "
      "set CUDAToolkit_ROOT / NCCL_HOME, or use -DDMA_WITH_NCCL=AUTO")
  else()
    message(STATUS "dma: NCCL backend OFF (CUDA toolkit or NCCL not found)")
  endif()
endif()
