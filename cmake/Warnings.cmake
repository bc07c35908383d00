# Compiler warnings (errors with TESSERA_WERROR, as in CI) and sanitizers for our targets.
# CUDA sources (nvcc) get the host compiler's warnings through -Xcompiler and nvcc's own
# warnings as errors; -Wpedantic stays C++-only (nvcc's generated host code trips it).
function(tessera_target_options target)
  # -Wno-restrict: GCC 12 false positive on std::string concatenation at -O3 (GCC PR105651).
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wno-missing-field-initializers -Wno-restrict>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wno-missing-field-initializers>)
  if(TESSERA_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>
                                             $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings -Xcompiler=-Werror>)
  endif()
  if(TESSERA_SANITIZE)
    # Sanitizer instrumentation makes GCC report false maybe-uninitialized warnings
    # (std::optional<std::vector> members); the plain build keeps that warning on.
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-omit-frame-pointer
                                -fno-sanitize-recover=undefined -Wno-maybe-uninitialized>)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()
