import { describe, expect, it } from "vitest";
import { ApiError, describe as describeErr, describeError } from "../src/lib/errors";

describe("describeError", () => {
  it("has its own sentence for the codes people meet", () => {
    expect(describeError("username_taken", "username taken", 409)).toMatch(/already taken/);
    expect(describeError("invalid_credentials", "bad credentials", 401)).toMatch(/username or password/);
    expect(describeError("not_a_member", "forbidden", 403)).toMatch(/not a member/);
    expect(describeError("invalid_body")).toMatch(/4000/);
    expect(describeError("unavailable")).toMatch(/try again/i);
  });

  it("knows the backend's own codes", () => {
    expect(describeError("refresh_token_reused", "x", 401)).toMatch(/log in again/);
    expect(describeError("invalid_name", "x", 400)).toMatch(/Channel names/);
    expect(describeError("invalid_user", "a direct conversation needs another user", 400)).toMatch(/yourself/);
    expect(describeError("channel_not_found", "x", 404)).toMatch(/does not exist/);
    expect(describeError("channel_name_taken", "x", 409)).toMatch(/exists already.*Browse channels/);
    // A serde message is no help to a person.
    expect(describeError("invalid_field", "Failed to deserialize the JSON body", 400)).toMatch(/check what you entered/);
  });

  it("shows the server's words for validation errors it doesn't know", () => {
    expect(describeError("validation_error", "display_name must be at most 64 characters", 400)).toBe(
      "Display_name must be at most 64 characters.",
    );
    expect(describeError("invalid_query", "", 400)).toBe("Please check what you entered and try again.");
  });

  it("falls back to the server message, then to the status", () => {
    expect(describeError("brand_new_code", "The moon is in the way.", 400)).toBe("The moon is in the way.");
    expect(describeError("brand_new_code", "", 503)).toMatch(/server had a problem/);
    expect(describeError(undefined, undefined, 429)).toMatch(/fast/);
    expect(describeError(undefined)).toMatch(/Something went wrong/);
  });

  it("describes thrown errors", () => {
    expect(describeErr(new ApiError(409, "username_taken", "x"))).toMatch(/already taken/);
    expect(describeErr(new ApiError(0, "network_error", ""))).toMatch(/Can't reach the server/);
    expect(describeErr(new TypeError("Failed to fetch"))).toMatch(/Can't reach the server/);
  });
});
