#pragma once
// Tessera's file formats: safetensors, NumPy .npy/.npz, and training checkpoints.
#include "tessera/io/checkpoint.h"
#include "tessera/io/npy.h"
#include "tessera/io/safetensors.h"
#include "tessera/io/state_dict.h"
