//! `kast schedule install|list|remove`: jobs timed the system's way. Where
//! systemd is the init system, a user service and timer
//! (`~/.config/systemd/user/kast-NAME.{service,timer}`: `Persistent=true`
//! so a run missed while the machine was off happens at boot, a randomised
//! delay, `Nice=19` and idle I/O); elsewhere a crontab line marked with the
//! job's name. `kast agent` covers hosts with neither.

use crate::cli::ScheduleCommand;
use crate::context::Context;
use crate::jobs::timing::{self, Calendar};
use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Which scheduler gets the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Init {
    Systemd,
    Cron,
}

impl Init {
    /// systemd when it is the running init system (its own test, as
    /// `sd_booted()` does), else cron.
    fn detect() -> Init {
        if Path::new("/run/systemd/system").is_dir() {
            Init::Systemd
        } else {
            Init::Cron
        }
    }
}

/// When, in the two forms a job file allows.
#[derive(Clone, Debug, PartialEq)]
pub enum When {
    Every(Duration),
    Calendar(Calendar),
}

impl When {
    /// From `--every`/`--calendar`, else from the job.
    fn of(every: Option<&str>, calendar: Option<&str>, job: &crate::jobs::Job) -> Result<When> {
        let every = every.or(job.every.as_deref());
        let calendar = calendar.or(job.calendar.as_deref());
        match (every, calendar) {
            (Some(e), None) => Ok(When::Every(timing::parse_duration(e)?)),
            (None, Some(c)) => Ok(When::Calendar(Calendar::parse(c)?)),
            (Some(_), Some(_)) => bail!("give --every or --calendar, not both"),
            (None, None) => {
                bail!("the job has no `every` or `calendar`: give --every or --calendar")
            }
        }
    }

    /// An interval as a calendar event when one says the same (systemd's
    /// `Persistent=` and cron need calendar events).
    fn as_calendar(&self) -> Option<String> {
        let secs = match self {
            When::Calendar(c) => return Some(c.systemd()),
            When::Every(d) => d.as_secs(),
        };
        match secs {
            604_800 => Some("weekly".into()),
            86_400 => Some("daily".into()),
            3600 => Some("hourly".into()),
            s if s % 3600 == 0 && 24 % (s / 3600) == 0 => {
                Some(format!("*-*-* 00/{}:00:00", s / 3600))
            }
            s if s % 60 == 0 && 60 % (s / 60) == 0 => Some(format!("*-*-* *:00/{}:00", s / 60)),
            _ => None,
        }
    }

    fn cron(&self) -> Result<String> {
        match self {
            When::Calendar(c) => Ok(c.cron()),
            When::Every(d) => match d.as_secs() {
                604_800 => Ok("0 0 * * 1".into()),
                86_400 => Ok("0 0 * * *".into()),
                3600 => Ok("0 * * * *".into()),
                s if s % 3600 == 0 && 24 % (s / 3600) == 0 => Ok(format!("0 */{} * * *", s / 3600)),
                s if s % 60 == 0 && 60 % (s / 60) == 0 => Ok(format!("*/{} * * * *", s / 60)),
                _ => bail!(
                    "cron cannot run something every {}s; use an interval that divides an hour or a day, a calendar, or `kast agent`",
                    d.as_secs()
                ),
            },
        }
    }

    fn interval(&self) -> Duration {
        match self {
            When::Every(d) => *d,
            When::Calendar(c) => c.longest_gap(),
        }
    }
}

/// The command a scheduler runs: this binary, the config file by its
/// absolute path (a timer's environment is not the shell's), the job.
fn job_command(ctx: &Context, name: &str) -> Result<Vec<String>> {
    let exe = std::env::current_exe().context("cannot tell where the kast binary is")?;
    let config = std::path::absolute(&ctx.dirs.config_file)?;
    Ok(vec![
        exe.display().to_string(),
        "--config".into(),
        config.display().to_string(),
        "job".into(),
        "run".into(),
        name.into(),
    ])
}

/// Whether a word goes into a command line as it is (else it is quoted).
fn is_plain(word: &str) -> bool {
    word.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:@+=,".contains(c))
}

/// A word for a unit file's command line: quoted when it needs it.
fn systemd_word(word: &str) -> String {
    if is_plain(word) {
        return word.to_string();
    }
    let escaped = word
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    format!("\"{escaped}\"")
}

/// The same for `sh` (cron runs lines with it).
fn shell_word(word: &str) -> String {
    if is_plain(word) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// The service and timer units for a job.
pub fn systemd_units(name: &str, command: &[String], when: &When) -> (String, String) {
    let exec = command
        .iter()
        .map(|w| systemd_word(w))
        .collect::<Vec<_>>()
        .join(" ");
    let service = format!(
        "[Unit]\n\
         Description=kast job {name}\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={exec}\n\
         Nice=19\n\
         IOSchedulingClass=idle\n"
    );
    // Spread machines that share a schedule, by a tenth of it (at most 10 min).
    let delay = (when.interval().as_secs() / 10).clamp(1, 600);
    let timing = match when.as_calendar() {
        Some(calendar) => format!("OnCalendar={calendar}\n"),
        None => {
            let every = when.interval().as_secs();
            format!("OnBootSec={every}s\nOnUnitActiveSec={every}s\n")
        }
    };
    let timer = format!(
        "[Unit]\n\
         Description=Run kast job {name} on schedule\n\
         \n\
         [Timer]\n\
         {timing}\
         Persistent=true\n\
         RandomizedDelaySec={delay}s\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    );
    (service, timer)
}

/// The crontab line for a job, marked with its name so list and remove
/// find it.
pub fn cron_line(name: &str, command: &[String], when: &When, log: &Path) -> Result<String> {
    // cron reads `%` in a command as a newline unless escaped.
    let words = command
        .iter()
        .map(|w| shell_word(w).replace('%', "\\%"))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(format!(
        "{} nice -n 19 ionice -c 3 {words} >> {} 2>&1 {}{name}",
        when.cron()?,
        shell_word(&log.display().to_string()),
        CRON_MARK
    ))
}

/// What ends every line kast writes into a crontab.
const CRON_MARK: &str = "# kast job ";

fn unit_dir(ctx: &Context) -> PathBuf {
    // XDG_CONFIG_HOME/systemd/user: kast's config dir is XDG_CONFIG_HOME/kast.
    ctx.dirs
        .config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
        .join("systemd")
        .join("user")
}

pub fn run(ctx: &Context, command: &ScheduleCommand) -> Result<()> {
    match command {
        ScheduleCommand::Install {
            name,
            every,
            calendar,
            init,
            print,
        } => {
            let job = crate::jobs::find(&ctx.dirs, name)?;
            let when = When::of(every.as_deref(), calendar.as_deref(), &job)?;
            let command = job_command(ctx, name)?;
            let init = init.unwrap_or_else(Init::detect);
            if *print {
                return print_schedule(ctx, name, &command, &when, init);
            }
            match init {
                Init::Systemd => install_systemd(ctx, name, &command, &when),
                Init::Cron => install_cron(ctx, name, &command, &when),
            }
        }
        ScheduleCommand::List => list(ctx),
        ScheduleCommand::Remove { name } => remove(ctx, name),
    }
}

fn cron_log(ctx: &Context, name: &str) -> PathBuf {
    ctx.dirs.data.join("logs").join(format!("{name}.log"))
}

fn print_schedule(
    ctx: &Context,
    name: &str,
    command: &[String],
    when: &When,
    init: Init,
) -> Result<()> {
    match init {
        Init::Systemd => {
            let (service, timer) = systemd_units(name, command, when);
            println!("# kast-{name}.service\n{service}\n# kast-{name}.timer\n{timer}");
        }
        Init::Cron => println!("{}", cron_line(name, command, when, &cron_log(ctx, name))?),
    }
    Ok(())
}

fn install_systemd(ctx: &Context, name: &str, command: &[String], when: &When) -> Result<()> {
    let (service, timer) = systemd_units(name, command, when);
    let dir = unit_dir(ctx);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let unit = format!("kast-{name}");
    for (suffix, text) in [("service", &service), ("timer", &timer)] {
        let path = dir.join(format!("{unit}.{suffix}"));
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        ctx.note(&format!("wrote {}", path.display()));
    }
    systemctl(&["daemon-reload"])
        .and_then(|()| systemctl(&["enable", "--now", &format!("{unit}.timer")]))
        .map_err(|e| {
            anyhow!(
                "the units are written, but systemd did not take them ({e}); run \
                 `systemctl --user daemon-reload && systemctl --user enable --now {unit}.timer` \
                 in your session (and `loginctl enable-linger` to run while logged out)"
            )
        })?;
    if !ctx.quiet {
        println!("job {name} runs from the systemd timer {unit}.timer");
    }
    Ok(())
}

fn systemctl(args: &[&str]) -> Result<()> {
    let out = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow!("systemctl: {e}"))?;
    if !out.status.success() {
        bail!(
            "systemctl --user {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The current crontab's lines (none when the user has no crontab yet).
fn crontab_lines() -> Result<Vec<String>> {
    let out = Command::new("crontab")
        .arg("-l")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow!("crontab: {e} (install cron, or run `kast agent`)"))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        if said.contains("no crontab") {
            return Ok(Vec::new());
        }
        bail!("crontab -l: {}", said.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

fn write_crontab(lines: &[String]) -> Result<()> {
    let mut child = Command::new("crontab")
        .arg("-")
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow!("crontab: {e}"))?;
    let mut text = lines.join("\n");
    text.push('\n');
    std::io::Write::write_all(&mut child.stdin.take().expect("piped"), text.as_bytes())?;
    if !child.wait()?.success() {
        bail!("crontab refused the new table");
    }
    Ok(())
}

fn install_cron(ctx: &Context, name: &str, command: &[String], when: &When) -> Result<()> {
    let log = cron_log(ctx, name);
    std::fs::create_dir_all(log.parent().expect("has a parent"))?;
    let line = cron_line(name, command, when, &log)?;
    let mark = format!("{CRON_MARK}{name}");
    let mut lines: Vec<String> = crontab_lines()?
        .into_iter()
        .filter(|l| !l.ends_with(&mark))
        .collect();
    lines.push(line.clone());
    write_crontab(&lines)?;
    if !ctx.quiet {
        println!("job {name} runs from your crontab:\n{line}");
    }
    Ok(())
}

fn list(ctx: &Context) -> Result<()> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(unit_dir(ctx)) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file
                .strip_prefix("kast-")
                .and_then(|f| f.strip_suffix(".timer"))
            {
                found.push(json!({"job": name, "by": "systemd", "unit": file}));
            }
        }
    }
    if let Ok(lines) = crontab_lines() {
        for line in lines {
            if let Some((_, name)) = line.rsplit_once(CRON_MARK) {
                found.push(json!({"job": name, "by": "cron", "line": line}));
            }
        }
    }
    if ctx.json {
        return ctx.print_json(&json!(found));
    }
    for f in &found {
        println!(
            "{}: {} ({})",
            f["job"].as_str().unwrap_or(""),
            f["by"].as_str().unwrap_or(""),
            f["unit"].as_str().or(f["line"].as_str()).unwrap_or("")
        );
    }
    if found.is_empty() && !ctx.quiet {
        println!("no job is scheduled");
    }
    Ok(())
}

fn remove(ctx: &Context, name: &str) -> Result<()> {
    let mut removed = false;
    let unit = format!("kast-{name}");
    let dir = unit_dir(ctx);
    if dir.join(format!("{unit}.timer")).exists() {
        let _ = systemctl(&["disable", "--now", &format!("{unit}.timer")]);
        for suffix in ["timer", "service"] {
            let _ = std::fs::remove_file(dir.join(format!("{unit}.{suffix}")));
        }
        let _ = systemctl(&["daemon-reload"]);
        removed = true;
    }
    if let Ok(lines) = crontab_lines() {
        let mark = format!("{CRON_MARK}{name}");
        if lines.iter().any(|l| l.ends_with(&mark)) {
            let kept: Vec<String> = lines.into_iter().filter(|l| !l.ends_with(&mark)).collect();
            write_crontab(&kept)?;
            removed = true;
        }
    }
    if !removed {
        bail!("job {name} is not scheduled (`kast schedule list`)");
    }
    if !ctx.quiet {
        println!("job {name} is no longer scheduled");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_become_calendar_events_where_they_can() {
        let every = |s: &str| When::Every(timing::parse_duration(s).unwrap());
        assert_eq!(every("1h").as_calendar().as_deref(), Some("hourly"));
        assert_eq!(
            every("6h").as_calendar().as_deref(),
            Some("*-*-* 00/6:00:00")
        );
        assert_eq!(
            every("15m").as_calendar().as_deref(),
            Some("*-*-* *:00/15:00")
        );
        assert_eq!(every("7m").as_calendar(), None);
        assert_eq!(every("15m").cron().unwrap(), "*/15 * * * *");
        assert_eq!(every("6h").cron().unwrap(), "0 */6 * * *");
        assert!(every("7m").cron().is_err());
    }

    #[test]
    fn unit_commands_quote_what_needs_quoting() {
        let command = vec![
            "/opt/kast".to_string(),
            "my config.toml".into(),
            "50%".into(),
        ];
        let (service, _) = systemd_units("x", &command, &When::Every(Duration::from_secs(3600)));
        assert!(
            service.contains(r#"ExecStart=/opt/kast "my config.toml" "50%%""#),
            "{service}"
        );
        let line = cron_line(
            "x",
            &command,
            &When::Every(Duration::from_secs(3600)),
            Path::new("/l/x.log"),
        )
        .unwrap();
        assert!(
            line.starts_with(r"0 * * * * nice -n 19 ionice -c 3 /opt/kast 'my config.toml' '50\%'"),
            "{line}"
        );
        assert!(line.ends_with("# kast job x"), "{line}");
    }
}
