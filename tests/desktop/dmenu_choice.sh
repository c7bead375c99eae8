#!/bin/sh
# dunst's dmenu stand-in for tests: it is given the notification's actions, one per line,
# and answers with the one whose text contains the contents of the file
# $XDG_RUNTIME_DIR/choice (written by the test before it asks dunst for the context
# menu). What it was offered is kept in $XDG_RUNTIME_DIR/dmenu.offered.
want=$(cat "$XDG_RUNTIME_DIR/choice" 2>/dev/null)
tee "$XDG_RUNTIME_DIR/dmenu.offered" | grep -F -- "$want" | head -n 1
