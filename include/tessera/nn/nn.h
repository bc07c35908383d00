#pragma once
// The nn API: modules, containers, layers, recurrent and transformer layers, functional ops,
// initializers and losses.
//
//   namespace nn = tessera::nn;
//   namespace F = tessera::nn::functional;
#include "tessera/nn/containers.h"
#include "tessera/nn/functional.h"
#include "tessera/nn/init.h"
#include "tessera/nn/layers.h"
#include "tessera/nn/loss.h"
#include "tessera/nn/module.h"
#include "tessera/nn/recurrent.h"
#include "tessera/nn/transformer.h"
