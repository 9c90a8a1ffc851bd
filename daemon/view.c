/* SPDX-License-Identifier: MIT */
#include "view.h"
