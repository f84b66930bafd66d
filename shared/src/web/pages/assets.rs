//! The pages' style sheet and script, compiled into the binary (no file is read).

use crate::web::page::Answer;

const STYLE_SHEET: &str = include_str!("../../../assets/app.css");
const SCRIPT: &str = include_str!("../../../assets/app.js");

pub fn style_sheet() -> Answer {
    Answer::asset("text/css; charset=utf-8", STYLE_SHEET)
}

pub fn script() -> Answer {
    Answer::asset("text/javascript; charset=utf-8", SCRIPT)
}
