// The workbench's session helpers (ui/ui_session.h): cookie parsing, loopback names, random ids,
// constant-time comparison and expiry.
#include <gtest/gtest.h>

#include <thread>

#include "lathe/ui/ui_session.h"

namespace {

using namespace lathe::ui;

TEST(UiSession, CookieValue) {
  EXPECT_EQ(cookie_value("a=1; lathe_ui_session=abc; b=2", "lathe_ui_session"), "abc");
  EXPECT_EQ(cookie_value("lathe_ui_session=abc", "lathe_ui_session"), "abc");
  EXPECT_EQ(cookie_value("xlathe_ui_session=abc", "lathe_ui_session"), "");
  EXPECT_EQ(cookie_value("lathe_ui_sessionx=abc", "lathe_ui_session"), "");
  EXPECT_EQ(cookie_value("", "lathe_ui_session"), "");
}

TEST(UiSession, LoopbackNames) {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"}) EXPECT_TRUE(is_loopback_host(h)) << h;
  for (const char* h : {"0.0.0.0", "10.0.0.1", "evil.example", "localhost.evil.example", "", "1127.0.0.1"})
    EXPECT_FALSE(is_loopback_host(h)) << h;
}

TEST(UiSession, IdsAreRandomAndCompareExactly) {
  const std::string a = random_hex(), b = random_hex();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(constant_time_equal(a, a));
  EXPECT_FALSE(constant_time_equal(a, b));
  EXPECT_FALSE(constant_time_equal(a, a.substr(0, 31)));
  EXPECT_FALSE(constant_time_equal("", "x"));
}

TEST(UiSession, SessionsExpire) {
  SessionStore s(0.2);
  Session x = s.create("Kim");
  ASSERT_TRUE(s.get(x.id));
  EXPECT_EQ(s.get(x.id)->reviewer, "Kim");
  EXPECT_NE(x.csrf, x.id);
  EXPECT_FALSE(s.get("nope"));
  EXPECT_FALSE(s.get(""));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(s.get(x.id));
  Session y = s.create("Lee");
  s.remove(y.id);
  EXPECT_FALSE(s.get(y.id));
}

}  // namespace
