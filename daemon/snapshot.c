/* SPDX-License-Identifier: MIT */
#include "snapshot.h"
