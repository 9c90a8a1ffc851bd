/* SPDX-License-Identifier: MIT */
#include "scheduler.h"
