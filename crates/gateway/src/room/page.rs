//! The waiting page browsers see: position, estimated wait and a progress bar, in Korean or English, that
//! refreshes itself after a jittered delay. Operators may replace it with their own template file.
//!
//! The page needs no script: a `<meta http-equiv="refresh">` reloads it, and the delay is drawn fresh for
//! every response so a crowd that arrived together does not poll together. The progress bar is a native
//! `<progress>` with a text equivalent, and the status sits in a polite live region for screen readers.

use std::fmt::Write;

use http::HeaderMap;
use http::header::ACCEPT_LANGUAGE;
use spillway_core::room::State;

/// Everything a page (built-in or template) can show.
#[derive(Debug, Clone)]
pub struct PageVars<'a> {
    pub room: &'a str,
    pub title: &'a str,
    pub state: State,
    pub position: Option<u64>,
    pub eta_seconds: Option<u64>,
    pub progress: Option<f64>,
    pub waiting: u64,
    pub refresh_seconds: u64,
    pub lang: Lang,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ko,
}

impl Lang {
    /// The client's most preferred of the languages we have, by `Accept-Language` q-values; English if none.
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let mut best = (Self::En, -1.0f32);
        for value in headers.get_all(ACCEPT_LANGUAGE).iter().filter_map(|v| v.to_str().ok()) {
            for item in value.split(',') {
                let mut parts = item.split(';');
                let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
                let q =
                    parts.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
                let lang = if tag == "ko" || tag.starts_with("ko-") {
                    Some(Self::Ko)
                } else if tag == "en" || tag.starts_with("en-") || tag == "*" {
                    Some(Self::En)
                } else {
                    None
                };
                if let Some(lang) = lang
                    && q > best.1
                {
                    best = (lang, q);
                }
            }
        }
        best.0
    }

    fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ko => "ko",
        }
    }
}

/// The sentence that explains the state, in the client's language.
pub fn message(state: State, lang: Lang) -> &'static str {
    match (lang, state) {
        (Lang::En, State::Waiting) => {
            "You are in line. Keep this page open: it refreshes by itself and keeps your place."
        }
        (Lang::En, State::Admitted) => "It is your turn. Taking you in now.",
        (Lang::En, State::Paused) => "Admission is paused for a moment. You keep your place.",
        (Lang::En, State::Closed) => "This waiting room is closed.",
        (Lang::En, State::Full) => "The waiting room is full right now. Please try again later.",
        (Lang::Ko, State::Waiting) => {
            "대기열에 들어왔습니다. 이 페이지를 열어 두세요. 자동으로 새로고침되며 순서가 유지됩니다."
        }
        (Lang::Ko, State::Admitted) => "입장 차례입니다. 곧 이동합니다.",
        (Lang::Ko, State::Paused) => "입장이 잠시 멈췄습니다. 순서는 그대로 유지됩니다.",
        (Lang::Ko, State::Closed) => "대기실이 닫혔습니다.",
        (Lang::Ko, State::Full) => "지금은 대기실이 가득 찼습니다. 잠시 후 다시 시도해 주세요.",
    }
}

/// "about 3 minutes" / "약 3분".
pub fn human_eta(seconds: u64, lang: Lang) -> String {
    let minutes = seconds.div_ceil(60);
    match lang {
        Lang::En if seconds < 60 => "less than a minute".to_string(),
        Lang::En if minutes < 120 => format!("about {minutes} minute{}", if minutes == 1 { "" } else { "s" }),
        Lang::En => format!("about {} hours", minutes.div_ceil(60)),
        Lang::Ko if seconds < 60 => "1분 이내".to_string(),
        Lang::Ko if minutes < 120 => format!("약 {minutes}분"),
        Lang::Ko => format!("약 {}시간", minutes.div_ceil(60)),
    }
}

/// Fills an operator's template: `{{name}}` for each variable, HTML-escaped.
pub fn render_template(template: &str, vars: &PageVars<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        match variable(after[..end].trim(), vars) {
            Some(value) => out.push_str(&escape(&value)),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The variables a template may use. Unknown names are left as written, so a typo shows on the page.
pub const VARIABLES: &[&str] = &[
    "room",
    "title",
    "state",
    "message",
    "position",
    "eta_seconds",
    "eta",
    "progress_percent",
    "waiting",
    "refresh_seconds",
    "lang",
    "status_url",
    "leave_url",
];

fn variable(name: &str, v: &PageVars<'_>) -> Option<String> {
    Some(match name {
        "room" => v.room.to_string(),
        "title" => v.title.to_string(),
        "state" => v.state.as_str().to_string(),
        "message" => message(v.state, v.lang).to_string(),
        "position" => v.position.map(|p| p.to_string()).unwrap_or_default(),
        "eta_seconds" => v.eta_seconds.map(|s| s.to_string()).unwrap_or_default(),
        "eta" => v.eta_seconds.map(|s| human_eta(s, v.lang)).unwrap_or_default(),
        "progress_percent" => v.progress.map(|p| format!("{:.0}", p * 100.0)).unwrap_or_default(),
        "waiting" => v.waiting.to_string(),
        "refresh_seconds" => v.refresh_seconds.to_string(),
        "lang" => v.lang.code().to_string(),
        "status_url" => format!("/_spillway/rooms/{}/status", v.room),
        "leave_url" => format!("/_spillway/rooms/{}/leave", v.room),
        _ => return None,
    })
}

/// The built-in page.
pub fn render(vars: &PageVars<'_>) -> String {
    let ko = vars.lang == Lang::Ko;
    let t = |en: &'static str, k: &'static str| if ko { k } else { en };
    let title = escape(vars.title);
    let mut body = String::new();
    let _ = write!(body, "<p class=\"msg\">{}</p>", escape(message(vars.state, vars.lang)));
    if let Some(position) = vars.position {
        let _ =
            write!(body, "<p class=\"pos\">{} <strong>{position}</strong></p>", t("Your place in line:", "내 순서:"));
    }
    if let Some(eta) = vars.eta_seconds {
        let _ = write!(
            body,
            "<p>{} <strong>{}</strong></p>",
            t("Estimated wait:", "예상 대기 시간:"),
            escape(&human_eta(eta, vars.lang))
        );
    }
    if let Some(progress) = vars.progress {
        let pct = (progress * 100.0).round() as u32;
        let _ = write!(
            body,
            "<progress max=\"100\" value=\"{pct}\" aria-label=\"{}\">{pct}%</progress>",
            t("Progress through the line", "대기 진행률")
        );
    }
    let _ = write!(
        body,
        "<p class=\"small\">{}</p>",
        t(
            "This page refreshes by itself every few seconds. Reloading it does not lose your place.",
            "이 페이지는 몇 초마다 자동으로 새로고침됩니다. 새로고침해도 순서를 잃지 않습니다."
        )
    );
    if vars.state == State::Waiting {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/_spillway/rooms/{}/leave\"><button type=\"submit\">{}</button></form>",
            escape(vars.room),
            t("Leave the line", "대기열 나가기")
        );
    }
    format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{refresh}\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/_spillway/assets/room.css\"></head>\n\
         <body><main><h1>{title}</h1><div role=\"status\" aria-live=\"polite\">{body}</div></main></body></html>\n",
        lang = vars.lang.code(),
        refresh = vars.refresh_seconds,
    )
}

/// The stylesheet served at `/_spillway/assets/room.css`.
pub const STYLESHEET: &str = "\
body{font-family:system-ui,-apple-system,'Apple SD Gothic Neo','Malgun Gothic',sans-serif;margin:0;\
background:#f6f7f9;color:#1b1f24}\
main{max-width:36rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:12px;\
box-shadow:0 1px 4px rgba(0,0,0,.08)}\
h1{font-size:1.5rem;margin-top:0}.msg{font-size:1.1rem}.pos strong{font-size:2rem}\
progress{width:100%;height:1.25rem}.small{color:#555;font-size:.9rem}\
button{margin-top:1rem;padding:.5rem 1rem;border:1px solid #888;background:#fff;border-radius:6px;cursor:pointer}\
@media (prefers-color-scheme:dark){body{background:#111;color:#eee}main{background:#1c1c1e}.small{color:#aaa}\
button{background:#2c2c2e;color:#eee}}\n";

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn vars(lang: Lang) -> PageVars<'static> {
        PageVars {
            room: "sale",
            title: "Drop <1>",
            state: State::Waiting,
            position: Some(42),
            eta_seconds: Some(150),
            progress: Some(0.25),
            waiting: 100,
            refresh_seconds: 7,
            lang,
        }
    }

    #[test]
    fn language_by_q_value() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::negotiate(&h), Lang::En);
        h.insert(ACCEPT_LANGUAGE, HeaderValue::from_static("ko-KR,ko;q=0.9,en-US;q=0.8"));
        assert_eq!(Lang::negotiate(&h), Lang::Ko);
        h.insert(ACCEPT_LANGUAGE, HeaderValue::from_static("en;q=0.9, ko;q=0.3, fr"));
        assert_eq!(Lang::negotiate(&h), Lang::En);
    }

    #[test]
    fn built_in_page_shows_everything_escaped() {
        let page = render(&vars(Lang::Ko));
        assert!(page.contains("<html lang=\"ko\">"));
        assert!(page.contains("content=\"7\""));
        assert!(page.contains("<strong>42</strong>"));
        assert!(page.contains("약 3분"));
        assert!(page.contains("value=\"25\""));
        assert!(page.contains("Drop &lt;1&gt;"));
        assert!(!page.contains("Drop <1>"));
    }

    #[test]
    fn templates_fill_known_variables_and_keep_unknown_ones() {
        let out = render_template("<b>{{ position }}</b> {{eta}} {{title}} {{nope}} {{", &vars(Lang::En));
        assert_eq!(out, "<b>42</b> about 3 minutes Drop &lt;1&gt; {{nope}} {{");
        for name in VARIABLES {
            assert!(variable(name, &vars(Lang::En)).is_some(), "{name}");
        }
    }
}
