#pragma once
// Optimizers, LR schedulers, gradient clipping and loss scaling (tessera::optim).
#include "tessera/optim/clip_grad.h"
#include "tessera/optim/grad_scaler.h"
#include "tessera/optim/lr_scheduler.h"
#include "tessera/optim/optimizer.h"
