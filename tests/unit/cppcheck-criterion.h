/* For cppcheck only (scripts/static-analysis.sh): Criterion's test macros
 * as plain declarations, so that the test files can be analysed. */
#define Test(suite, name, ...) void suite##_##name(void)
#define TestSuite(suite, ...) void suite##_suite(void)
