#include <gtest/gtest.h>
TEST(Agent, Placeholder) {}
