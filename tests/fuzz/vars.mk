# Read with the top Makefile to print one of its variables, so the fuzz
# build links exactly what the project links:
#   make -s -f Makefile -f tests/fuzz/vars.mk print-LDLIBS
print-%:
	@echo '$($*)'
