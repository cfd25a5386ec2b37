#!/bin/bash
# cpu.sh PID -> prints utime+stime in microseconds
read -a f < /proc/$1/stat; tck=$(getconf CLK_TCK); echo $(( (f[13]+f[14]) * 1000000 / tck ))
