#pragma once
// Optimizers, LR schedulers and gradient clipping (tessera::optim).
#include "tessera/optim/clip_grad.h"
#include "tessera/optim/lr_scheduler.h"
#include "tessera/optim/optimizer.h"
