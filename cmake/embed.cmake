# cmake -DINPUT=file -DOUTPUT=file.c -DNAME=symbol -P embed.cmake
# Writes the bytes of INPUT as a C array NAME and its length NAME_len: the
# live view's page, script and style sheet go into dynobs-exporter, so
# that it serves them with no file to install and nothing fetched.
file(READ ${INPUT} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE ${OUTPUT} "/* Generated from ${INPUT} by cmake/embed.cmake. */\n"
  "const unsigned char ${NAME}[] = {\n${bytes}0};\n"
  "const unsigned long ${NAME}_len = ${len};\n")
