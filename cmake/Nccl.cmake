# NCCL backend: built when the CUDA toolkit and NCCL are found (DMA_WITH_NCCL=AUTO),
# required with ON, skipped with OFF. Exposes the IMPORTED target dma::nccl and
# the variable DMA_HAVE_NCCL.
set(DMA_HAVE_NCCL OFF)
if(NOT DMA_WITH_NCCL STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  # NCCL_HOME first: the NCCL of a Python torch, not an older one beside the CUDA toolkit.
  find_path(NCCL_INCLUDE_DIR nccl.h
    HINTS $ENV{NCCL_HOME}/include ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  # libnccl.so.2 alone: the nvidia-nccl wheel under a Python torch ships no libnccl.so link.
  find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2 NAMES_PER_DIR
    HINTS $ENV{NCCL_HOME}/lib ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64)
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
