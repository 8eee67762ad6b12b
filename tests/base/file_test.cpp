#include "base/file.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/testing/test_util.h"

namespace radlads {
namespace {

int CountEntries(const std::string& dir) {
  int n = 0;
  DIR* d = opendir(dir.c_str());
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") ++n;
  }
  closedir(d);
  return n;
}

TEST(File, AtomicWriteCreatesAndReplaces) {
  testing::ScratchDir dir;
  const std::string path = dir.File("a.txt");
  ASSERT_TRUE(AtomicWriteFile(path, "first").ok());
  EXPECT_EQ(*ReadFileToString(path), "first");
  ASSERT_TRUE(AtomicWriteFile(path, "second, longer").ok());
  EXPECT_EQ(*ReadFileToString(path), "second, longer");
  EXPECT_EQ(CountEntries(dir.path()), 1) << "no temp file may be left behind";
}

TEST(File, AtomicWriteFailureLeavesOldContentAndNoTemp) {
  testing::ScratchDir dir;
  const std::string path = dir.File("a.txt");
  ASSERT_TRUE(AtomicWriteFile(path, "keep me").ok());
  Status st = AtomicWriteFileWith(path, [](const WriteFn& write) {
    std::string partial = "half-written";
    Status s = write(std::as_bytes(std::span<const char>(partial.data(), partial.size())));
    if (!s.ok()) return s;
    return Status::IOError("simulated failure mid-write");
  });
  EXPECT_EQ(st.code(), Status::Code::kIOError);
  EXPECT_EQ(*ReadFileToString(path), "keep me");
  EXPECT_EQ(CountEntries(dir.path()), 1);
}

TEST(File, AtomicWriteHonoursModeDespiteUmask) {
  testing::ScratchDir dir;
  const std::string path = dir.File("secret");
  mode_t old = umask(0);
  ASSERT_TRUE(AtomicWriteFile(path, "s3cr3t", 0600).ok());
  umask(old);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(File, MissingFileIsNotFound) {
  testing::ScratchDir dir;
  auto r = ReadFileToString(dir.File("nope"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_NE(r.status().message().find("nope"), std::string::npos) << "message names the path";
  auto m = MappedFile::Open(dir.File("nope"));
  EXPECT_EQ(m.status().code(), Status::Code::kNotFound);
}

TEST(File, MapReadsBytesAndEmptyFiles) {
  testing::ScratchDir dir;
  ASSERT_TRUE(AtomicWriteFile(dir.File("x"), std::string("ab\0cd", 5)).ok());
  auto m = MappedFile::Open(dir.File("x"));
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->size(), 5u);
  EXPECT_EQ(static_cast<char>(m->bytes()[3]), 'c');
  MappedFile moved = std::move(*m);
  EXPECT_EQ(moved.size(), 5u);
  ASSERT_TRUE(AtomicWriteFile(dir.File("empty"), "").ok());
  auto e = MappedFile::Open(dir.File("empty"));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->size(), 0u);
  EXPECT_EQ(MappedFile::Open(dir.path()).status().code(), Status::Code::kInvalidArgument);
}

TEST(File, PathHelpers) {
  EXPECT_EQ(DirName("a/b/c"), "a/b");
  EXPECT_EQ(DirName("c"), ".");
  EXPECT_EQ(DirName("/c"), "/");
  EXPECT_EQ(BaseName("a/b/c.txt"), "c.txt");
  EXPECT_EQ(JoinPath("a/", "/b"), "a/b");
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  testing::ScratchDir dir;
  ASSERT_TRUE(CreateDirectories(dir.File("x/y/z")).ok());
  EXPECT_TRUE(IsDirectory(dir.File("x/y/z")));
  ASSERT_TRUE(CreateDirectories(dir.File("x/y/z")).ok()) << "idempotent";
}

}  // namespace
}  // namespace radlads
