/* SPDX-License-Identifier: MIT */
#include "auth.h"
