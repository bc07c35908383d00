#pragma once

namespace tessera::demo {
/// The worked example behind `tessera demo` (until the training demo replaces it).
void run();
}  // namespace tessera::demo
