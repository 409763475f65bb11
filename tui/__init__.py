"""The einet dashboard (Textual). It drives NEST only through einet's engine process."""
