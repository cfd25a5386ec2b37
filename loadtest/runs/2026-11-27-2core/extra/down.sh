#!/bin/bash
. $1/env; kill -TERM $LX_PID; kill -TERM $FLEET_PID; sleep 1; kill -0 $LX_PID 2>/dev/null && echo "leadx still alive"
