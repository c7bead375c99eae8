// Drives the hub's IT console in Debian's Chromium (npm playwright-core, pinned in
// fixtures/package.json), as one person: signs in through the OpenID provider's own
// login page, opens each page named on the command line, takes its screenshot, runs
// axe-core on it (npm @axe-core/playwright) and prints one JSON line per page.
// Usage: node drive.mjs HUB_URL EMAIL OUT_DIR THEME PAGE...
import { chromium } from "playwright-core";
import { AxeBuilder } from "@axe-core/playwright";

const [hub, email, out, theme, ...pages] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
  // No desktop session for a headless browser: it would wake portals on the test's bus.
  env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: "disabled:" },
});
try {
  const context = await browser.newContext({ colorScheme: theme, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  // Text from devices must never run: a dialog or a changed title is an error.
  page.on("dialog", (d) => {
    errors.push(`dialog: ${d.message()}`);
    d.dismiss();
  });
  await page.goto(`${hub}/`);
  await page.getByTestId("sign-in").click();
  // The provider's own login page (oidc-provider's dev interactions).
  await page.locator('input[name="login"]').fill(email);
  await page.locator('input[name="password"]').fill("any");
  await page.locator('button[type="submit"]').click();
  await page.waitForURL((u) => u.href.startsWith(`${hub}/`) && !u.pathname.startsWith("/v1/"), { timeout: 30000 });
  const who = await page.getByTestId("who").innerText({ timeout: 30000 });
  // What the sign-in itself logged (the console's first look before it, the provider's
  // own page) is not the console's pages'.
  const before = errors.splice(0);
  console.log(JSON.stringify({ signed_in: who, url: page.url(), before }));
  for (const name of pages) {
    if (name === "policy-flow") {
      // A policy admin's round: type a draft (DRAFT), see it checked, preview its impact,
      // publish it.
      await page.goto(`${hub}/#/policy`);
      await page.getByTestId("policy-draft").waitFor();
      await page.waitForLoadState("networkidle");
      await page.getByTestId("policy-draft").fill(process.env.DRAFT);
      await page.getByText("The draft would publish.").waitFor({ timeout: 20000 });
      await page.getByTestId("preview").click();
      const summary = await page.getByTestId("impact-summary").innerText({ timeout: 30000 });
      await page.screenshot({ path: `${out}/policy-preview-${theme}.png`, fullPage: true });
      const axe = await new AxeBuilder({ page }).analyze();
      const serious = axe.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id);
      const text = await page.locator("main").innerText();
      await page.getByTestId("publish").click();
      const published = await page.getByTestId("policy-message").innerText({ timeout: 30000 });
      console.log(JSON.stringify({ page: name, summary, text, published, serious, errors: errors.splice(0) }));
      continue;
    }
    if (name === "suspend-flow") {
      // An admin suspends an agent from People and agents, saying why.
      await page.goto(`${hub}/#/people`);
      const row = page.getByTestId("agent-row").first();
      await row.getByLabel("Why").fill(process.env.WHY);
      await row.getByRole("button", { name: "Suspend" }).click();
      await page.getByText(`suspended: ${process.env.WHY}`).waitFor({ timeout: 30000 });
      const text = await page.locator("main").innerText();
      console.log(JSON.stringify({ page: name, text, errors: errors.splice(0) }));
      continue;
    }
    if (name === "revoke-flow") {
      // An admin revokes the first active device, saying why.
      await page.goto(`${hub}/#/devices`);
      await page.getByTestId("revoke-why").first().fill(process.env.WHY);
      await page.getByTestId("revoke").first().click();
      await page.getByText(`revoked: ${process.env.WHY}`).waitFor({ timeout: 30000 });
      const text = await page.locator("main").innerText();
      console.log(JSON.stringify({ page: name, text, errors: errors.splice(0) }));
      continue;
    }
    if (name === "ack-flow") {
      // An auditor or admin acknowledges the open alert with a note.
      await page.goto(`${hub}/#/alerts`);
      await page.getByTestId("alert-note").first().fill(process.env.NOTE);
      await page.getByTestId("acknowledge").first().click();
      await page.getByTestId("alerts-acknowledged").waitFor({ timeout: 30000 });
      const text = await page.locator("main").innerText();
      const axe = await new AxeBuilder({ page }).analyze();
      const serious = axe.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id);
      console.log(JSON.stringify({ page: name, text, serious, errors: errors.splice(0) }));
      continue;
    }
    if (name === "approve-flow") {
      // An approver's round: the request waiting, its full arguments, Approve once.
      await page.goto(`${hub}/#/approvals`);
      await page.getByTestId("approval").first().waitFor({ timeout: 30000 });
      await page.waitForLoadState("networkidle");
      const shown = await page.getByTestId("approval-arguments").allTextContents();
      const text = await page.locator("main").innerText();
      await page.screenshot({ path: `${out}/approvals-${theme}.png`, fullPage: true });
      const axe = await new AxeBuilder({ page }).analyze();
      const serious = axe.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id);
      await page.getByTestId("approve").first().click();
      const answered = await page.getByTestId("approval-done").innerText({ timeout: 30000 });
      if ((await page.title()) !== "Countersign console") errors.push("title changed");
      console.log(JSON.stringify({ page: name, text, arguments: shown, answered, serious, errors: errors.splice(0) }));
      continue;
    }
    await page.goto(`${hub}/#/${name}`);
    await page.getByRole("heading", { level: 2 }).first().waitFor();
    await page.waitForLoadState("networkidle");
    await page.waitForFunction(() => !document.querySelector("main")?.textContent?.includes("Loading"));
    await page.screenshot({ path: `${out}/${name}-${theme}.png`, fullPage: true });
    const axe = await new AxeBuilder({ page }).analyze();
    const serious = axe.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) }));
    const text = await page.locator("main").innerText();
    const shown = await page.locator('[data-testid="audit-arguments"]').allTextContents();
    const title = await page.title();
    if (title !== "Countersign console") errors.push(`title changed: ${title}`);
    console.log(JSON.stringify({ page: name, text, arguments: shown, serious, errors: errors.splice(0) }));
  }
} finally {
  await browser.close();
}
