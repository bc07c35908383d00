#pragma once
// tessera::data: datasets, the DataLoader, transforms and readers (CSV, IDX, images).
#include "tessera/data/dataloader.h"
#include "tessera/data/dataset.h"
#include "tessera/data/readers.h"
#include "tessera/data/transforms.h"
