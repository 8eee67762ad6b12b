#include "kernels/tensor.h"

#include <gtest/gtest.h>

#include <cstring>

namespace radlads {
namespace {

TEST(Tensor, EmptyZerosAndShape) {
  Tensor t = Tensor::Zeros({2, 3, 4});
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.rank(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.raw()) % 64, 0u) << "64-byte aligned";
  for (int i = 0; i < 24; ++i) EXPECT_EQ(t.f32()[i], 0.0f);
  EXPECT_FALSE(Tensor().defined());
  EXPECT_EQ(Tensor::Zeros({0, 5}).numel(), 0);
  EXPECT_EQ(Tensor::Zeros({}).numel(), 1) << "rank-0 scalar";
}

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::FromVector({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor v = t.View({3, -1});
  EXPECT_EQ(v.shape(), (Shape{3, 2}));
  v.f32()[5] = 50;
  EXPECT_EQ(t.f32()[5], 50);
  Tensor r = t.Rows(1, 2);
  EXPECT_EQ(r.shape(), (Shape{1, 3}));
  EXPECT_EQ(r.f32()[0], 3);
  Tensor c = t.Clone();
  c.f32()[0] = -1;
  EXPECT_EQ(t.f32()[0], 0) << "Clone is deep";
}

TEST(Tensor, BorrowAndConversions) {
  float buf[4] = {1.5f, -2.0f, 3.25f, 0.0f};
  Tensor b = Tensor::Borrow(buf, {4}, DType::kF32);
  b.f32()[3] = 7.0f;
  EXPECT_EQ(buf[3], 7.0f);
  Tensor bf = b.ToDType(DType::kBF16);
  EXPECT_EQ(bf.dtype(), DType::kBF16);
  Tensor back = bf.ToF32();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(back.f32()[i], buf[i]) << "exactly representable in bf16";
  Tensor c = Tensor::BorrowConst(buf, {2, 2}, DType::kF32);
  EXPECT_TRUE(c.is_const());
  EXPECT_EQ(static_cast<const Tensor&>(c).f32()[1], -2.0f);
}

TEST(TensorDeathTest, MisuseIsCaught) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Tensor t = Tensor::Zeros({2, 3});
  EXPECT_DEATH(t.View({4, 2}), "cannot view");
  EXPECT_DEATH(t.data<std::int32_t>(), "element access as I32");
  float buf[2] = {};
  Tensor c = Tensor::BorrowConst(buf, {2}, DType::kF32);
  EXPECT_DEATH(c.f32(), "read-only");
}

}  // namespace
}  // namespace radlads
