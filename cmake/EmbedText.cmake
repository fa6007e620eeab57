# cmake -DIN=file -DOUT=header.h -DNAME=symbol -P EmbedText.cmake
# Writes OUT declaring `static const char NAME[]`: the bytes of IN and a NUL,
# as hex, so any text (quotes, backslashes, non-ASCII) embeds unchanged.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp" "/* generated from ${IN} by cmake/EmbedText.cmake: do not edit */\n"
  "static const char ${NAME}[] = {\n${bytes}0x00};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
