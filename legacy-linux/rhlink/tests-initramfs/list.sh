#!/bin/sh
# Lists the channels this Linux partition sees.
if rhlink list; then echo "RHTEST-RESULT ok"; else echo "RHTEST-RESULT fail: rhlink list"; exit 1; fi
