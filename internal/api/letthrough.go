package api

// LetThrough says, per hold reason, what would have let the message
// through: what a reviewer shows the sender, or changes. The reasons of
// every built-in detector are here (a test in internal/detect keeps the
// catalogue complete); a reason of the site's own rules is not.
var LetThrough = map[string]string{
	"bulk-from-scripted-client": "50 envelope recipients or fewer, or a client other than Zimbra's scriptable HTML client (zclient) or bare SOAP.",
	"rate-recipients-hour":      "Fewer recipients in the last hour than the rule's limit (rules: in the configuration).",
	"rate-messages-hour":        "Fewer messages in the last hour than the rule's limit (rules: in the configuration).",
	"rate-recipients-day":       "Fewer recipients in the last 24 hours than the rule's limit (rules: in the configuration).",
	"account-restricted":        "The account not being restricted: an admin lifts it with account unrestrict once the account is verified.",
	"account-locked":            "The account not being locked: it is unlocked once the user has changed the password (account unlock).",
	"engine-error":              "The engine deciding: it failed, and engine.on_error decided instead.",
	"identity-header-forged":    "One X-Authenticated-User header, the relay's: the message carried another copy, written by the client, naming someone else.",
	"client-header-mismatch":    "Evidence only: the client wrote an X-Mailer or User-Agent that differs from the relay's.",
	"first-time-recipients-hour": "Fewer first-time recipients (people the account had not written to within novelty.lookback) in the last hour than novelty.first_time_hour. " +
		"Released, the recipients are known from then on.",
	"first-time-recipients-day": "Fewer first-time recipients (people the account had not written to within novelty.lookback) in the last 24 hours than novelty.first_time_day. " +
		"Released, the recipients are known from then on.",
	"reply-to-phisher":    "No recipient on the phisher lists (phishers.lists, phishers.blocklist), or the recipient on phishers.allowlist.",
	"from-listed-phisher": "Inbound tag only: the sender or Reply-To is on the phisher lists.",
	"above-baseline-hour": "Fewer recipients in this hour than baseline.factor times the account's usual peak hour (and more than baseline.floor_hour), or only recipients the account wrote to before. " +
		"Released and trusted, or its incident dismissed, the burst becomes part of the account's normal.",
	"above-baseline-day": "Fewer recipients today than baseline.factor times the account's usual day (and more than baseline.floor_day), or only recipients the account wrote to before. " +
		"Released and trusted, or its incident dismissed, the burst becomes part of the account's normal.",
	"new-client-family":        "A client family the account used before, or fewer recipients than baseline.new_client_min_recipients.",
	"reply-to-suspected-phish": "Not a reply to a message the spam filter tagged (phish.*), nor to its Reply-To address.",
	"campaign-run":             "Fewer separate messages of the same text to people the account never wrote to (campaign.day_* and week_*). Released and trusted, or its incident dismissed, the text is trusted for the account.",
	"phishing-run":             "Fewer separate messages of the same text with the vocabulary of credential phishing (campaign.lure_*). Released and trusted, or its incident dismissed, the text is trusted for the account.",
	"campaign-across-accounts": "Fewer accounts of the site sending the same text to first-time outside recipients today (campaign.across_accounts), or fewer messages and recipients among them than the day limits.",
	"new-link-domain":          "Links only to hosts the site's outbound mail carried before (or the site's own domains), or fewer first-time recipients in the host's first day (campaign.new_link_first_time).",
	"marked-spam-text":         "A text other than that of a message an admin marked as spam (quarantine spam).",
	"new-origin":               "Evidence only: a network (/24, /48) the account had used before.",
	"shared-origin":            "An address that was not new to several other accounts the same day (a shared network of the site belongs in origin.site_networks).",
	"password-leak":            "The sender's own password not appearing in the message.",
	"held-outside-mailbrake":   "Nothing mailbrake decided: Postfix held it (header_checks HOLD, postsuper -h, or mailbrake's record of it was lost).",
}
