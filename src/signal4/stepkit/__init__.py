"""What the processing steps share: ffmpeg, safe fetching, yt-dlp, speaker turns."""
