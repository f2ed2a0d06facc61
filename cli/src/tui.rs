//! `watch` on a terminal: a full-screen view of the watched maps (entries, changes in
//! the last sample, changes per second) and the latest changes of the selected map,
//! those of the last sample highlighted. Keys: `q` (or Esc) quits, up/down (or k/j)
//! select a map, `p` pauses and resumes sampling.

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use mapwalk::diff::{self, text};
use mapwalk::watch::{Sample, Watcher};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::layout::{Constraint, Direction, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};
use ratatui::Terminal;

use crate::args::WatchArgs;
use crate::error::CliError;
use crate::history::{millis, Sampled};
use crate::output::Answer;

/// The latest changes kept per map.
const KEEP: usize = 200;

/// Puts the terminal back however the view ends.
struct Screen;

impl Screen {
    fn enter() -> io::Result<Self> {
        enable_raw_mode()?;
        if let Err(e) = execute!(io::stdout(), EnterAlternateScreen) {
            let _ = disable_raw_mode();
            return Err(e);
        }
        Ok(Self)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(io::stdout(), LeaveAlternateScreen);
        let _ = disable_raw_mode();
    }
}

/// What the view shows.
#[derive(Default)]
struct View {
    last: Option<Sample>,
    pause: Option<Duration>,
    /// Per map id: (sample number, line) of its latest changes, newest last.
    recent: BTreeMap<u32, Vec<(u64, String)>>,
    selected: usize,
    paused: bool,
}

impl View {
    fn take(&mut self, s: Sample, pause: Option<Duration>) {
        if let Some(d) = &s.diff {
            for m in &d.maps {
                let lines = self.recent.entry(m.b.id).or_default();
                for c in &m.changes {
                    for l in text::change_lines(m.b.map_type, c, text::Style::default()) {
                        lines.push((s.number, l));
                    }
                }
                let extra = lines.len().saturating_sub(KEEP);
                lines.drain(..extra);
            }
        }
        self.pause = pause;
        self.last = Some(s);
    }

    fn draw(&self, f: &mut ratatui::Frame<'_>, source: &str) {
        let rows = Layout::default()
            .direction(Direction::Vertical)
            .constraints([
                Constraint::Length(1),
                Constraint::Percentage(45),
                Constraint::Min(3),
            ])
            .split(f.area());
        let Some(s) = &self.last else {
            f.render_widget(
                Paragraph::new(format!("mapwalk watch {source}: reading...")),
                rows[0],
            );
            return;
        };
        let pause = self.pause.map_or(String::new(), |p| {
            format!(", guest paused {} ms", millis(p))
        });
        let state = if self.paused {
            " [paused: p resumes]"
        } else {
            ""
        };
        let head = format!(
            "mapwalk watch {source}: sample {}, {} maps, read {} ms{pause}{state}   q quit, \
             up/down select, p pause",
            s.number,
            s.maps.len(),
            millis(s.read)
        );
        f.render_widget(Paragraph::new(head), rows[0]);
        let table_rows: Vec<Row> = s
            .maps
            .iter()
            .map(|m| {
                let row = Row::new(vec![
                    m.info.id.to_string(),
                    m.info.name.to_string(),
                    m.info.map_type.to_string(),
                    m.entries.to_string(),
                    m.changes.to_string(),
                    format!("{:.1}", m.changes_per_sec),
                ]);
                if m.changes > 0 {
                    row.style(Style::default().fg(Color::Yellow))
                } else {
                    row
                }
            })
            .collect();
        let table = Table::new(
            table_rows,
            [
                Constraint::Length(8),
                Constraint::Length(17),
                Constraint::Length(16),
                Constraint::Length(9),
                Constraint::Length(8),
                Constraint::Length(10),
            ],
        )
        .header(
            Row::new(vec![
                "id",
                "name",
                "type",
                "entries",
                "changes",
                "changes/s",
            ])
            .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::ALL).title("maps"))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
        let mut ts = TableState::default();
        ts.select(Some(self.selected.min(s.maps.len().saturating_sub(1))));
        f.render_stateful_widget(table, rows[1], &mut ts);
        let chosen = s
            .maps
            .get(self.selected.min(s.maps.len().saturating_sub(1)));
        let (title, lines) = match chosen {
            Some(m) => {
                let recent = self.recent.get(&m.info.id).map_or(&[][..], Vec::as_slice);
                let height = usize::from(rows[2].height.saturating_sub(2));
                let start = recent.len().saturating_sub(height);
                let lines: Vec<Line> = recent[start..]
                    .iter()
                    .map(|(n, l)| {
                        let text = format!("#{n} {l}");
                        if *n == s.number {
                            Line::styled(
                                text,
                                Style::default()
                                    .add_modifier(Modifier::BOLD)
                                    .fg(Color::Yellow),
                            )
                        } else {
                            Line::raw(text)
                        }
                    })
                    .collect();
                (format!("latest changes of {}", diff::named(&m.info)), lines)
            }
            None => ("no map".to_owned(), Vec::new()),
        };
        f.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
            rows[2],
        );
    }
}

/// Runs the view until `q`, or `--count` samples.
///
/// # Errors
/// A sample that fails, or the terminal.
pub fn run(
    args: &WatchArgs,
    sample: &mut dyn FnMut(&mut Watcher) -> Sampled,
    w: &mut Watcher,
) -> Result<Answer, CliError> {
    let source = crate::history::source_label();
    let screen = Screen::enter()?;
    let mut term = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    let mut view = View::default();
    let mut next = Instant::now();
    let mut taken = 0u64;
    let result = loop {
        if !view.paused && Instant::now() >= next {
            next = Instant::now() + args.interval;
            match sample(w) {
                Ok((s, pause)) => view.take(s, pause),
                Err(e) => break Err(e),
            }
            taken += 1;
        }
        term.draw(|f| view.draw(f, source))?;
        if args.count.is_some_and(|c| taken >= c) {
            break Ok(Answer::Whole);
        }
        let wait = if view.paused {
            Duration::from_millis(250)
        } else {
            next.saturating_duration_since(Instant::now())
        };
        if !event::poll(wait)? {
            continue;
        }
        if let Event::Key(k) = event::read()? {
            if k.kind != KeyEventKind::Press {
                continue;
            }
            let maps = view.last.as_ref().map_or(0, |s| s.maps.len());
            match k.code {
                KeyCode::Char('q') | KeyCode::Esc => break Ok(Answer::Whole),
                KeyCode::Down | KeyCode::Char('j') => {
                    view.selected = (view.selected + 1).min(maps.saturating_sub(1));
                }
                KeyCode::Up | KeyCode::Char('k') => view.selected = view.selected.saturating_sub(1),
                KeyCode::Char('p') => {
                    view.paused = !view.paused;
                    next = Instant::now();
                }
                _ => {}
            }
        }
    };
    drop(term);
    drop(screen);
    result
}
