#include "base/progress.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace radlads {
namespace {

TEST(Progress, HumanUnits) {
  EXPECT_EQ(ProgressBar::HumanCount(999), "999");
  EXPECT_EQ(ProgressBar::HumanCount(12345), "12.3k");
  EXPECT_EQ(ProgressBar::HumanCount(1234567), "1.23M");
  EXPECT_EQ(ProgressBar::HumanCount(2.5e9), "2.50G");
  EXPECT_EQ(ProgressBar::HumanDuration(83), "1:23");
  EXPECT_EQ(ProgressBar::HumanDuration(3700), "1:01:40");
  EXPECT_EQ(ProgressBar::HumanDuration(-1), "--:--");
}

TEST(Progress, RenderShowsFractionCountsAndSuffix) {
  std::FILE* sink = std::tmpfile();
  ProgressBar bar("align", 2000000, "tok", sink);
  std::string line = bar.Render(1000000, "loss 0.1234", 120);
  EXPECT_NE(line.find("align ["), std::string::npos) << line;
  EXPECT_NE(line.find(" 50%"), std::string::npos) << line;
  EXPECT_NE(line.find("1.00M/2.00M tok"), std::string::npos) << line;
  EXPECT_NE(line.find("loss 0.1234"), std::string::npos) << line;
  bar.Finish();
  // Not a terminal: Finish writes exactly one plain line.
  std::rewind(sink);
  char buf[512] = {};
  ASSERT_NE(std::fgets(buf, sizeof(buf), sink), nullptr);
  EXPECT_NE(std::string(buf).find("align"), std::string::npos);
  EXPECT_EQ(std::fgets(buf, sizeof(buf), sink), nullptr);
  std::fclose(sink);
}

}  // namespace
}  // namespace radlads
