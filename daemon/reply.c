/* SPDX-License-Identifier: MIT */
#include "reply.h"
