/* SPDX-License-Identifier: MIT */
#include "diff.h"
