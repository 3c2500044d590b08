// Linux only, see shim.c. Nothing to call from Swift.
#pragma once
